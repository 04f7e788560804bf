
u
infom
ki
^„«status_codeÌÈ­response_data´{"ok": true, "n": 1}ªinput_data€£url»http://127.0.0.1:37529/hookmsgpack