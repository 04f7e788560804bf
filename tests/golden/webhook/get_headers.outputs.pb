
f
info^
\Z
O„«status_codeÌÈ­response_data¢okªinput_data¡a£url»http://127.0.0.1:34055/hookmsgpack