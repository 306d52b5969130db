package mongotest_test

import (
	"context"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/eventshop/eventshop/internal/testsupport/mongotest"
)

// TestNewDatabase: each test's database starts empty, is its own, and is
// gone (its client disconnected) when the test ends.
func TestNewDatabase(t *testing.T) {
	ctx := context.Background()
	var first *mongo.Database
	t.Run("first", func(t *testing.T) {
		first = mongotest.NewDatabase(t)
		if _, err := first.Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
			t.Fatal(err)
		}
		second := mongotest.NewDatabase(t)
		if n, err := second.Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
			t.Errorf("a second database holds %d documents, %v; want its own, empty", n, err)
		}
	})
	if _, err := first.Collection("c").CountDocuments(ctx, bson.D{}); !errors.Is(err, mongo.ErrClientDisconnected) {
		t.Errorf("after the test: %v, want its client disconnected", err)
	}
}
