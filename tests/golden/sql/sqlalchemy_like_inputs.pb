

word

nn