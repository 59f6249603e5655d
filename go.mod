module github.com/cruzlog/cruzdb

go 1.26
