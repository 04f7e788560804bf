
j
infob
`^
S„«status_codeÌÈ­response_data©cafÃ© Â£5ªinput_data€£url»http://127.0.0.1:38739/hookmsgpack