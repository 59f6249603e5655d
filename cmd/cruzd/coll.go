package main

import (
	"errors"

	"github.com/cruzlog/cruzdb"
)

// coll is a hash or a set as a command reads or changes it: its metadata
// and the prefix of its elements (store.go).
type coll struct {
	key    []byte
	m      meta
	exists bool
	prefix []byte
	dirty  bool // an element changed: save writes the metadata
}

// openColl reads key as a collection of type t: errWrongType if it holds
// another type; an empty collection with a new version if it is missing.
func (c *conn) openColl(tx *cruzdb.Txn, key []byte, t keyType) (*coll, error) {
	m, ok, err := c.loadTyped(tx, key, t)
	if err != nil {
		return nil, err
	}
	if !ok {
		m = meta{typ: t, version: newVersion()}
	}
	return &coll{key: key, m: m, exists: ok, prefix: subPrefixOf(key, m.version)}, nil
}

// get reads one element.
func (h *coll) get(tx *cruzdb.Txn, field []byte) ([]byte, bool, error) {
	if !h.exists && !h.dirty {
		return nil, false, nil
	}
	v, err := tx.Get(subKey(h.prefix, field))
	switch {
	case err == nil:
		return v, true, nil
	case errors.Is(err, cruzdb.ErrNotFound), errors.Is(err, cruzdb.ErrKeyTooLarge):
		return nil, false, nil
	}
	return nil, false, err
}

// put writes one element and reports whether it is new.
func (h *coll) put(tx *cruzdb.Txn, field, value []byte) (bool, error) {
	_, had, err := h.get(tx, field)
	if err != nil {
		return false, err
	}
	if err := tx.Put(subKey(h.prefix, field), value); err != nil {
		return false, err
	}
	h.dirty = true
	if !had {
		h.m.count++
	}
	return !had, nil
}

// add adds a set member and reports whether it is new; a member already
// there changes nothing (the key is not written, so WATCH does not fire).
func (h *coll) add(tx *cruzdb.Txn, member []byte) (bool, error) {
	_, had, err := h.get(tx, member)
	if err != nil || had {
		return false, err
	}
	return h.put(tx, member, nil)
}

// del deletes one element and reports whether it existed.
func (h *coll) del(tx *cruzdb.Txn, field []byte) (bool, error) {
	_, had, err := h.get(tx, field)
	if err != nil || !had {
		return false, err
	}
	if err := tx.Delete(subKey(h.prefix, field)); err != nil {
		return false, err
	}
	h.dirty = true
	h.m.count--
	return true, nil
}

// save writes the metadata if an element changed, deleting the key once it
// has no elements (as Redis deletes an empty hash or set).
func (h *coll) save(tx *cruzdb.Txn) error {
	if !h.dirty {
		return nil
	}
	if h.m.count <= 0 {
		if !h.exists {
			return nil
		}
		return deleteKey(tx, h.key)
	}
	if len(h.key) > maxRedisKey {
		return checkKeyErr(h.key)
	}
	return storeMeta(tx, h.key, h.m)
}

func checkKeyErr(key []byte) error { return replyError(checkWrite(key, nil)) }

// each calls f for every element in field order until it returns false.
func (h *coll) each(tx *cruzdb.Txn, f func(field, value []byte) bool) error {
	if !h.exists && !h.dirty {
		return nil
	}
	for k, v := range tx.Range(h.prefix, prefixEnd(h.prefix)) {
		if !f(k[len(h.prefix):], v) {
			break
		}
	}
	return tx.Err()
}

// fields returns every element's field (and value, if values).
func (h *coll) all(tx *cruzdb.Txn) (fields, values [][]byte, err error) {
	err = h.each(tx, func(f, v []byte) bool {
		fields = append(fields, f)
		values = append(values, v)
		return true
	})
	return fields, values, err
}

// clear deletes every element (before the key is overwritten by a store
// command, say). The key's metadata is left to the caller.
func (h *coll) clearAll(tx *cruzdb.Txn) error {
	fields, _, err := h.all(tx)
	if err != nil {
		return err
	}
	for _, f := range fields {
		if err := tx.Delete(subKey(h.prefix, f)); err != nil {
			return err
		}
	}
	h.m.count = 0
	h.dirty = true
	return nil
}
