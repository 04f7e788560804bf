
ï
infoæ
ãà
Ô„«status_codeÌÈ­response_data¢okªinput_data£neg¥<-42>¡f¥<2.5>¡b§<False>¥color¦<blue>£big²<9007199254740993>¡t¦<True>¤none¦<None>¡s¯<hÃ©llo wÃ¶rld>¥empty¢<>¥maybe£<7>¡i£<5>¤tiny§<1e-07>¤textÙti=5 neg=-42 big=9007199254740993 f=2.5 tiny=1e-07 b=False t=True s=hÃ©llo wÃ¶rld empty= none=None maybe=7 color=blue£url»http://127.0.0.1:46617/hookmsgpack