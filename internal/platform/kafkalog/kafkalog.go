// Package kafkalog passes kafka-go's error log to slog.
package kafkalog

import (
	"fmt"
	"log/slog"
	"sync/atomic"
)

// Logger is a kafka-go Logger (ReaderConfig.ErrorLogger, Writer.ErrorLogger)
// that writes each line to a slog.Logger at Warn, prefixed, until Closing
// is called. It is safe for concurrent use.
type Logger struct {
	log     *slog.Logger
	prefix  string
	closing atomic.Bool
}

// New returns a Logger writing to log, each line prefixed with prefix
// (such as "notifier: kafka: ").
func New(log *slog.Logger, prefix string) *Logger {
	return &Logger{log: log, prefix: prefix}
}

// Printf logs one line of kafka-go's, unless Closing was called.
func (l *Logger) Printf(msg string, args ...any) {
	if !l.closing.Load() {
		l.log.Warn(l.prefix + fmt.Sprintf(msg, args...))
	}
}

// Closing silences the Logger: closing a reader makes it fail what it was
// doing, which is no news. Call it before closing the reader or writer.
func (l *Logger) Closing() { l.closing.Store(true) }
