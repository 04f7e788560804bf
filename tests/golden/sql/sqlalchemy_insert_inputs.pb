

x



who

	O'Brien