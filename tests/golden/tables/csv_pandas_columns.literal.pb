
ŸBœ
@/tmp/golden-tables-ur7qtb5c/raw/3098871627f57ae919e80d9be2327ea8X
V

id


name


flag

score


when

at


codecsv