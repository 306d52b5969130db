package gateway_test

import (
	"testing"
	"time"

	"github.com/eventshop/eventshop/internal/edge/gateway"
	"github.com/eventshop/eventshop/internal/testsupport/redistest"
)

func TestNewRefusesBadConfig(t *testing.T) {
	rdb, _ := redistest.New(t)
	for name, cfg := range map[string]gateway.Config{
		"negative rate":         {PerSecond: -1, Burst: 1},
		"negative auth rate":    {AuthPerMinute: -1},
		"no burst":              {PerSecond: 10},
		"negative body limit":   {MaxBodyBytes: -1},
		"origin with a path":    {AllowedOrigins: []string{"https://shop.example/app"}},
		"origin with no scheme": {AllowedOrigins: []string{"shop.example"}},
		"negative in flight":    {MaxInFlight: -1},
		"negative queue":        {MaxInFlight: 1, MaxQueue: -1},
		"negative queue wait":   {MaxInFlight: 1, QueueWait: -time.Millisecond},
		"negative timeout":      {RequestTimeout: -time.Second},
	} {
		if _, err := gateway.New(cfg, rdb, nil); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	for name, cfg := range map[string]gateway.Config{
		"general limit": {PerSecond: 10, Burst: 20},
		"auth limit":    {AuthPerMinute: 10},
	} {
		if _, err := gateway.New(cfg, nil, nil); err == nil {
			t.Errorf("%s without Redis: New accepted it", name)
		}
	}
	// A process without Redis: headers and body limit only.
	if _, err := gateway.New(gateway.Config{MaxBodyBytes: 1 << 20}, nil, nil); err != nil {
		t.Errorf("no limits, no Redis: %v", err)
	}
}
