
c
info[
YW
L„«status_codeÌÈ­response_data¢okªinput_data€£url»http://127.0.0.1:37363/hookmsgpack