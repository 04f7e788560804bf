

s

héllo wörld