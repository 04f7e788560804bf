

q

1&admin=true