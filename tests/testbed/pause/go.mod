module smcstream/pause

go 1.22
