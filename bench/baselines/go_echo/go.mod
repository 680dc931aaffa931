module coop/bench/go_echo

go 1.19
