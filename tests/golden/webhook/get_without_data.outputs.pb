
o
infog
ec
X„«status_codeÌÈ­response_data¢okªinput_data€£urlÙ&http://127.0.0.1:38667/plain?a=1&b=twomsgpack