
k
infoc
a_
T„«status_codeÌÈ­response_data¢okªinput_data€£urlÙ"http://127.0.0.1:38563/admin?/hookmsgpack