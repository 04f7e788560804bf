
7
info/
-+
 ‚«status_codeÌÈ­response_data¢okmsgpack