
À
info·
´±
¥„«status_codeÌÈ­response_data¢okªinput_data¡k¡v£urlÙohttp://127.0.0.1:40863/hook?i=5&b=False&xs=[1, 2, 3]&s=hÃ©llo wÃ¶rld&dt=2024-01-02T03:04:05.000006+00:00#frag-5msgpack