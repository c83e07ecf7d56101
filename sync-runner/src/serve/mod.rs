//! Azure Functions custom handler (issue 8 builds it).
