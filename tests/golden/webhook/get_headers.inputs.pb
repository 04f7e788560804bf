

s
	
token

i

