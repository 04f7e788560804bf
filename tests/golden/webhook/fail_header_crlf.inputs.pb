

s

a
X-Injected: 1