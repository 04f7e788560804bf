
s
infok
ig
\„«status_codeÌÈ­response_data¢okªinput_data€£urlÙ*http://127.0.0.1:43123/api/items/../detailmsgpack