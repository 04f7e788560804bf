BV

id


name


flag

score


when

at


codecsv