
ï
infoæ
ãà
Ô„«status_codeÌÈ­response_data¢okªinput_data¡s¯<hÃ©llo wÃ¶rld>¥color¦<blue>¡b§<False>¡t¦<True>¡f¥<2.5>£big²<9007199254740993>¤none¦<None>¥maybe£<7>¤tiny§<1e-07>¥empty¢<>¡i£<5>¤textÙti=5 neg=-42 big=9007199254740993 f=2.5 tiny=1e-07 b=False t=True s=hÃ©llo wÃ¶rld empty= none=None maybe=7 color=blue£neg¥<-42>£url»http://127.0.0.1:43317/hookmsgpack