

flag

 

digit

7' OR '1'='1

max_id

2