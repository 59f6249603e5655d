package main

import (
	_ "github.com/cockroachdb/pebble/v2"
	_ "github.com/cruzlog/cruzdb"
	_ "github.com/dgraph-io/badger/v4"
	_ "go.etcd.io/bbolt"
	_ "gonum.org/v1/plot"
)

func main() {}
