
»
info²
¯¬
 „«status_codeÌÈ­response_data¢okªinput_data„¨key_text£a=1¥outer¥inner“§x-False¤deep“ª{inputs.s}µkeys are not rendered£key£url»http://127.0.0.1:39803/hookmsgpack