

x
	
GREEN