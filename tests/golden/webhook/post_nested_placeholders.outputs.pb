
»
info²
¯¬
 „«status_codeÌÈ­response_data¢okªinput_data„¨key_text£a=1£keyª{inputs.s}µkeys are not rendered¥outer¥inner“§x-False¤deep“£url»http://127.0.0.1:45505/hookmsgpack