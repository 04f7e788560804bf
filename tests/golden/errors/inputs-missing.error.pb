
x
SYSTEMjFlyteDataNotFoundException: USER:ValueError: error=Value error!  Received: <tmp>/inputs.pb. File not found 