
|
infot
rp
e„«status_codeÌÈ­response_data¢okªinput_data‚¨collapse“¥chain¥<5>/5£url»http://127.0.0.1:41987/hookmsgpack