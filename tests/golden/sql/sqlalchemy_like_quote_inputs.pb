

word	

O'B