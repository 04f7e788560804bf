
Ÿ
info–
“
„„«status_codeÌÈ­response_data¢okªinput_data€£urlÙRhttp://127.0.0.1:45847/items/5/2.5/False/None/[1, 2, 3]/{'k': 10}/hÃ©llo wÃ¶rld/xymsgpack