
k
infoc
a_
T„«status_codeÌÈ­response_data¢okªinput_data€£urlÙ"http://127.0.0.1:46873/admin?/hookmsgpack