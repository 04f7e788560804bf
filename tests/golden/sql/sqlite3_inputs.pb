
"
exclude

name-3' OR '1'='1

max_id


