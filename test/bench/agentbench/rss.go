package main

import "errors"

func runRSS(n int) error { return errors.New("not wired yet") }
