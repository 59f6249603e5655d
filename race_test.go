//go:build race

package cruzdb

// raceEnabled: the race detector slows the big workloads down about 15x, so
// tests that run them scale them down under it (see TestLogStaysBounded).
const raceEnabled = true
