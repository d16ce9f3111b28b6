//! PLACEHOLDER (being implemented by the file-format helper).
