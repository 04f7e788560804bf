

s	

xyz