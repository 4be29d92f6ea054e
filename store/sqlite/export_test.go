package sqlite

// Path returns the absolute path of the database file, so tests can check
// where Open put it.
func (db *DB) Path() string { return db.path }
