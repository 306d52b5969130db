package mail

// MaxPerConn is maxPerConn, for the tests.
const MaxPerConn = maxPerConn
