

flag

 

digit

7

max_id

2