module github.com/cruzlog/cruzdb

go 1.26

require (
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.45.0 // indirect
)
