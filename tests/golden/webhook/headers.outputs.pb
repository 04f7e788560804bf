
f
info^
\Z
O„«status_codeÌÈ­response_data¢okªinput_data¡k£url»http://127.0.0.1:45963/hookmsgpack