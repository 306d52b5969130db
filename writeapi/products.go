package writeapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/eventshop/eventshop/commands"
	"github.com/eventshop/eventshop/domain"
	"github.com/eventshop/eventshop/domain/product"
	"github.com/eventshop/eventshop/internal/edge"
	"github.com/eventshop/eventshop/internal/platform/resource"
)

// money reads a price sent as a JSON number (a string holding one is
// refused, though json.Number would take it); field names the error.
func money(raw json.RawMessage, field string) (domain.Cents, error) {
	c, err := domain.ParseCents(string(raw))
	if err != nil {
		return 0, edge.Invalid(field, field+" must be a number with at most two decimals")
	}
	return c, nil
}

// stockBody is the stock of a new product as the product document holds
// it, {"inventory": {"quantity", "warehouse"}}: the shape the original
// product service stored and this API answers with. What the server owns
// (reserved, available) is no member, so the strict decoder refuses it.
type stockBody struct {
	Quantity  *int64  `json:"quantity"`
	Warehouse *string `json:"warehouse"`
}

func (s *Server) handleCreateProduct(w http.ResponseWriter, r *http.Request) {
	var body struct {
		SKU         string          `json:"sku"`
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Price       json.RawMessage `json:"price"`
		Category    string          `json:"category"`
		VendorID    string          `json:"vendor_id"`
		Images      []string        `json:"images"`
		Metadata    json.RawMessage `json:"metadata"`
		Quantity    *int64          `json:"quantity"`
		Warehouse   *string         `json:"warehouse"`
		Inventory   *stockBody      `json:"inventory"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	stock, renamed, err := flatStock(stockBody{Quantity: body.Quantity, Warehouse: body.Warehouse}, body.Inventory)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	var price domain.Cents
	if body.Price != nil {
		if price, err = money(body.Price, "price"); err != nil {
			edge.WriteError(w, r, err)
			return
		}
	}
	a := actor(r)
	if body.VendorID != "" && a.Has("admin") {
		id, ok := edge.CanonicalID(body.VendorID)
		if !ok {
			edge.WriteError(w, r, edge.Invalid("vendor_id", "vendor_id must be a user id"))
			return
		}
		body.VendorID = id
	}
	if body.VendorID != "" && !a.Has("admin") {
		// vendor_id is the caller; only an admin may name another.
		edge.WriteError(w, r, edge.Invalid("vendor_id", "vendor_id may only be set by an admin"))
		return
	}
	ctx, cancel := command(r)
	defer cancel()
	p, res, err := s.catalog.CreateProduct(ctx, a, commands.CreateProduct{
		SKU: body.SKU, Name: body.Name, Description: body.Description, Price: price, Category: body.Category,
		VendorID: body.VendorID, Images: body.Images, Metadata: body.Metadata,
		Quantity: deref(stock.Quantity), Warehouse: deref(stock.Warehouse),
	})
	if err != nil {
		edge.WriteError(w, r, renameFields(err, renamed))
		return
	}
	w.Header().Set("Location", "/api/products/"+p.ID)
	writeResult(w, http.StatusCreated, res, resource.FromProduct(p))
}

// flatStock merges the two forms of a new product's stock: the flat
// members and inventory. It returns the stock and, for the members sent
// inside inventory, the command's field name → the request's, so that
// errors name what the client sent. Errors: a 422 naming a member sent in
// both forms.
func flatStock(flat stockBody, inv *stockBody) (stockBody, map[string]string, error) {
	if inv == nil {
		return flat, nil, nil
	}
	both := func(name string) error {
		return edge.Invalid("inventory."+name, "send "+name+" or inventory."+name+", not both")
	}
	switch {
	case flat.Quantity != nil && inv.Quantity != nil:
		return stockBody{}, nil, both("quantity")
	case flat.Warehouse != nil && inv.Warehouse != nil:
		return stockBody{}, nil, both("warehouse")
	}
	renamed := map[string]string{}
	if inv.Quantity != nil {
		flat.Quantity, renamed["quantity"] = inv.Quantity, "inventory.quantity"
	}
	if inv.Warehouse != nil {
		flat.Warehouse, renamed["warehouse"] = inv.Warehouse, "inventory.warehouse"
	}
	return flat, renamed, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// renameFields renames the fields of a validation error by names (the
// command's name → the request's); other errors are returned as they are.
func renameFields(err error, names map[string]string) error {
	var de *domain.Error
	if len(names) == 0 || !errors.As(err, &de) || len(de.Fields) == 0 {
		return err
	}
	out := *de
	out.Fields = slices.Clone(de.Fields)
	for i, f := range out.Fields {
		if n, ok := names[f.Field]; ok {
			out.Fields[i].Field = n
		}
	}
	return &out
}

func (s *Server) handleUpdateProduct(w http.ResponseWriter, r *http.Request) {
	id, err := edge.PathID(r, "product")
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	var body struct {
		Name        *string         `json:"name"`
		Description *string         `json:"description"`
		Price       json.RawMessage `json:"price"`
		Category    *string         `json:"category"`
		Images      *[]string       `json:"images"`
		Metadata    json.RawMessage `json:"metadata"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	up := product.Update{Name: body.Name, Description: body.Description, Category: body.Category, Images: body.Images, Metadata: body.Metadata}
	if body.Price != nil {
		c, err := money(body.Price, "price")
		if err != nil {
			edge.WriteError(w, r, err)
			return
		}
		up.Price = &c
	}
	s.productCommand(w, r, func(v int64) (product.State, commands.Result, error) {
		ctx, cancel := command(r)
		defer cancel()
		return s.catalog.UpdateProduct(ctx, actor(r), id, v, up)
	}, http.StatusOK)
}

func (s *Server) handleDiscontinueProduct(w http.ResponseWriter, r *http.Request) {
	id, err := edge.PathID(r, "product")
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	s.productCommand(w, r, func(v int64) (product.State, commands.Result, error) {
		ctx, cancel := command(r)
		defer cancel()
		return s.catalog.DiscontinueProduct(ctx, actor(r), id, v)
	}, http.StatusNoContent)
}

func (s *Server) handleAdjustInventory(w http.ResponseWriter, r *http.Request) {
	id, err := edge.PathID(r, "product")
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	var body struct {
		Adjustment int64  `json:"adjustment"`
		Reason     string `json:"reason"`
		Warehouse  string `json:"warehouse"`
	}
	if err := edge.Decode(r, &body); err != nil {
		edge.WriteError(w, r, err)
		return
	}
	s.productCommand(w, r, func(v int64) (product.State, commands.Result, error) {
		ctx, cancel := command(r)
		defer cancel()
		return s.catalog.AdjustInventory(ctx, actor(r), id, v,
			product.AdjustInventory{Adjustment: body.Adjustment, Reason: body.Reason, Warehouse: body.Warehouse})
	}, http.StatusOK)
}

// productCommand runs a command on one product with the request's
// If-Match and writes the product (or, for 204, only the headers).
func (s *Server) productCommand(w http.ResponseWriter, r *http.Request, run func(ifMatch int64) (product.State, commands.Result, error), status int) {
	v, err := ifMatch(r)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	p, res, err := run(v)
	if err != nil {
		edge.WriteError(w, r, err)
		return
	}
	if status == http.StatusNoContent {
		w.Header().Set("X-Event-Position", res.Position.String())
		w.WriteHeader(status)
		return
	}
	writeResult(w, status, res, resource.FromProduct(p))
}
