
|
infot
rp
e„«status_codeÌÈ­response_data¢okªinput_data‚¥chain¥<5>/5¨collapse“£url»http://127.0.0.1:44109/hookmsgpack