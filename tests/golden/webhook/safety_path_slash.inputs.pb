

path	

a/b