package load

import (
	"fmt"
	"math"
	"strings"
)

// The seeded catalogue's words. Product i is made of them deterministically,
// so every run lists the same catalogue and a search has words to find.
var (
	seedCategories = []string{"electronics", "clothing", "books", "home", "sports",
		"toys", "garden", "beauty", "grocery", "automotive"}
	seedAdjectives = []string{"Compact", "Classic", "Deluxe", "Eco", "Ultralight", "Rugged", "Smart",
		"Vintage", "Wireless", "Organic", "Portable", "Premium", "Handmade", "Foldable", "Insulated"}
	seedNouns = map[string][]string{
		"electronics": {"Headphones", "Speaker", "Charger", "Keyboard", "Monitor", "Camera"},
		"clothing":    {"Jacket", "Sweater", "Sneakers", "Scarf", "Jeans", "Raincoat"},
		"books":       {"Cookbook", "Novel", "Atlas", "Field Guide", "Anthology", "Workbook"},
		"home":        {"Lamp", "Kettle", "Pillow", "Mug", "Blanket", "Teapot"},
		"sports":      {"Yoga Mat", "Bottle", "Dumbbell", "Helmet", "Racket", "Backpack"},
		"toys":        {"Puzzle", "Kite", "Robot", "Board Game", "Train Set", "Plush Bear"},
		"garden":      {"Trowel", "Planter", "Hose", "Seed Kit", "Bird Feeder", "Pruner"},
		"beauty":      {"Soap", "Face Cream", "Hair Brush", "Lip Balm", "Shampoo", "Perfume"},
		"grocery":     {"Coffee", "Green Tea", "Olive Oil", "Honey", "Chocolate", "Pasta"},
		"automotive":  {"Car Charger", "Seat Cover", "Tyre Gauge", "Dash Cam", "Wiper Set", "Jump Starter"},
	}
)

// seedProduct is the create body of seeded product i (1-based): SKU
// LOAD-<i>, a name and description from the word lists, a price between
// 1.00 and 500.00, and stock enough for any run.
func seedProduct(i int) map[string]any {
	cat := seedCategories[i%len(seedCategories)]
	nouns := seedNouns[cat]
	adj := seedAdjectives[(i/len(seedCategories))%len(seedAdjectives)]
	noun := nouns[(i/7)%len(nouns)]
	// A spread of prices: a fixed pseudo-random walk over the index.
	cents := 100 + int64(math.Abs(math.Sin(float64(i)*12.9898))*49_900)
	return map[string]any{
		"sku":         fmt.Sprintf("LOAD-%06d", i),
		"name":        fmt.Sprintf("%s %s %d", adj, noun, i),
		"description": fmt.Sprintf("A %s %s from the load-test catalogue, item %d.", strings.ToLower(adj), strings.ToLower(noun), i),
		"price":       float64(cents) / 100,
		"category":    cat,
		"inventory":   map[string]any{"quantity": seedStock, "warehouse": "load"},
	}
}
