
i
infoa
_]
R„«status_codeÌÈ­response_data¢okªinput_data€£urlÙ http://127.0.0.1:36049/items/a/bmsgpack