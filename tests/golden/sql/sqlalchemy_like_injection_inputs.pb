
%
word

' OR 1=1 OR name LIKE '