BQ

id


name


flag

score


when

at


code