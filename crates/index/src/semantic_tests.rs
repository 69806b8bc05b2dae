use pretty_assertions::assert_eq;

use super::split_words;

#[test]
fn identifiers_split_into_words() {
    assert_eq!(split_words("averagePrice"), "average price");
    assert_eq!(split_words("average_price"), "average price");
    assert_eq!(split_words("HTTPServer.getURL"), "http server get url");
    assert_eq!(split_words("def add(self, x: int)"), "def add self x int");
    assert_eq!(split_words(""), "");
}
