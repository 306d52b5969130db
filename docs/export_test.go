package docs

// YAMLToJSON is yamlToJSON, for the external tests.
var YAMLToJSON = yamlToJSON
