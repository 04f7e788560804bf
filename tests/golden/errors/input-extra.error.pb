
U
SYSTEMIValueError: Received more input values 3 than allowed by the input spec 2 