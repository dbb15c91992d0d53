echo conf > conf
