"""Word lists the source-database generator draws from: categories, countries, names, words."""

CATEGORIES = (
    "art", "beauty", "christmas", "diy-and-crafts", "education", "event-planning", "finance",
    "home-decor", "mens-fashion", "quotes", "tattoos", "travel", "vehicles",
)

MEDIA_TYPES = ("image", "video", "multi-video(story page format)")

COUNTRIES = (
    "Afghanistan", "Albania", "Algeria", "American Samoa", "Andorra", "Angola", "Anguilla",
    "Antarctica (the territory South of 60 deg S)", "Antigua and Barbuda", "Argentina", "Armenia",
    "Aruba", "Australia", "Austria", "Azerbaijan", "Bahamas", "Bahrain", "Bangladesh", "Barbados",
    "Belarus", "Belgium", "Belize", "Benin", "Bermuda", "Bhutan", "Bolivia", "Bosnia and Herzegovina",
    "Botswana", "Bouvet Island (Bouvetoya)", "Brazil", "British Indian Ocean Territory",
    "British Virgin Islands", "Brunei Darussalam", "Bulgaria", "Burkina Faso", "Burundi", "Cambodia",
    "Cameroon", "Canada", "Cape Verde", "Cayman Islands", "Central African Republic", "Chad", "Chile",
    "China", "Christmas Island", "Cocos (Keeling) Islands", "Colombia", "Comoros", "Congo",
    "Cook Islands", "Costa Rica", "Cote d'Ivoire", "Croatia", "Cuba", "Cyprus", "Czech Republic",
    "Denmark", "Djibouti", "Dominica", "Dominican Republic", "Ecuador", "Egypt", "El Salvador",
    "Equatorial Guinea", "Eritrea", "Estonia", "Ethiopia", "Faroe Islands",
    "Falkland Islands (Malvinas)", "Fiji", "Finland", "France", "French Guiana", "French Polynesia",
    "French Southern Territories", "Gabon", "Gambia", "Georgia", "Germany", "Ghana", "Gibraltar",
    "Greece", "Greenland", "Grenada", "Guadeloupe", "Guam", "Guatemala", "Guernsey", "Guinea",
    "Guinea-Bissau", "Guyana", "Haiti", "Heard Island and McDonald Islands",
    "Holy See (Vatican City State)", "Honduras", "Hong Kong", "Hungary", "Iceland", "India",
    "Indonesia", "Iran", "Iraq", "Ireland", "Isle of Man", "Israel", "Italy", "Jamaica", "Japan",
    "Jersey", "Jordan", "Kazakhstan", "Kenya", "Kiribati", "Korea", "Kuwait", "Kyrgyz Republic",
    "Lao People's Democratic Republic", "Latvia", "Lebanon", "Lesotho", "Liberia",
    "Libyan Arab Jamahiriya", "Liechtenstein", "Lithuania", "Luxembourg", "Macao", "Madagascar",
    "Malawi", "Malaysia", "Maldives", "Mali", "Malta", "Marshall Islands", "Martinique",
    "Mauritania", "Mauritius", "Mayotte", "Mexico", "Micronesia", "Moldova", "Monaco", "Mongolia",
    "Montenegro", "Montserrat", "Morocco", "Mozambique", "Myanmar", "Namibia", "Nauru", "Nepal",
    "Netherlands", "Netherlands Antilles", "New Caledonia", "New Zealand", "Nicaragua", "Niger",
    "Nigeria", "Niue", "Norfolk Island", "North Macedonia", "Northern Mariana Islands", "Norway",
    "Oman", "Pakistan", "Palau", "Palestinian Territory", "Panama", "Papua New Guinea", "Paraguay",
    "Peru", "Philippines", "Pitcairn Islands", "Poland", "Portugal", "Puerto Rico", "Qatar",
    "Reunion", "Romania", "Russian Federation", "Rwanda", "Saint Barthelemy", "Saint Helena",
    "Saint Kitts and Nevis", "Saint Lucia", "Saint Martin", "Saint Pierre and Miquelon",
    "Saint Vincent and the Grenadines", "Samoa", "San Marino", "Sao Tome and Principe",
    "Saudi Arabia", "Senegal", "Serbia", "Seychelles", "Sierra Leone", "Singapore", "Slovakia",
    "Slovenia", "Solomon Islands", "Somalia", "South Africa",
    "South Georgia and the South Sandwich Islands", "Spain", "Sri Lanka", "Sudan", "Suriname",
    "Svalbard & Jan Mayen Islands", "Swaziland", "Sweden", "Switzerland", "Syrian Arab Republic",
    "Taiwan", "Tajikistan", "Tanzania", "Thailand", "Timor-Leste", "Togo", "Tokelau", "Tonga",
    "Trinidad and Tobago", "Tunisia", "Turkey", "Turkmenistan", "Turks and Caicos Islands", "Tuvalu",
    "Uganda", "Ukraine", "United Arab Emirates", "United Kingdom", "United States of America",
    "United States Minor Outlying Islands", "United States Virgin Islands", "Uruguay", "Uzbekistan",
    "Vanuatu", "Venezuela", "Vietnam", "Wallis and Futuna", "Western Sahara", "Yemen", "Zambia",
    "Zimbabwe",
)

FIRST_NAMES = (
    "Aaron", "Abigail", "Adam", "Alexander", "Alexis", "Alicia", "Amanda", "Amber", "Amy", "Andrea",
    "Andrew", "Angela", "Anna", "Anthony", "Ashley", "Barbara", "Benjamin", "Brandon", "Brenda",
    "Brian", "Brittany", "Caleb", "Carlos", "Catherine", "Charles", "Christina", "Christopher",
    "Cody", "Crystal", "Daniel", "David", "Deborah", "Dennis", "Diana", "Donna", "Dylan", "Edward",
    "Elizabeth", "Emily", "Eric", "Ethan", "Gabriel", "Gary", "Grace", "Gregory", "Hannah", "Heather",
    "Isaac", "Jacob", "James", "Jasmine", "Jason", "Jeffrey", "Jennifer", "Jeremy", "Jessica", "John",
    "Jonathan", "Jose", "Joseph", "Joshua", "Julia", "Justin", "Karen", "Katherine", "Kayla", "Kelly",
    "Kevin", "Kimberly", "Kyle", "Laura", "Lauren", "Linda", "Lisa", "Logan", "Luis", "Madison",
    "Maria", "Mark", "Matthew", "Megan", "Melissa", "Michael", "Michelle", "Morgan", "Natalie",
    "Nathan", "Nicholas", "Nicole", "Olivia", "Patricia", "Patrick", "Rachel", "Rebecca", "Richard",
    "Robert", "Ryan", "Samantha", "Samuel", "Sandra", "Sarah", "Sean", "Stephanie", "Steven",
    "Susan", "Taylor", "Thomas", "Timothy", "Tyler", "Victoria", "William", "Zachary",
)

LAST_NAMES = (
    "Adams", "Allen", "Alvarez", "Anderson", "Bailey", "Baker", "Barnes", "Bell", "Bennett", "Brooks",
    "Brown", "Butler", "Campbell", "Carter", "Castillo", "Chavez", "Clark", "Collins", "Cook",
    "Cooper", "Cox", "Cruz", "Davis", "Diaz", "Edwards", "Evans", "Fisher", "Flores", "Foster",
    "Garcia", "Gomez", "Gonzalez", "Gray", "Green", "Gutierrez", "Hall", "Harris", "Hernandez",
    "Hill", "Howard", "Hughes", "Jackson", "James", "Jenkins", "Johnson", "Jones", "Kelly", "Kim",
    "King", "Lee", "Lewis", "Long", "Lopez", "Martin", "Martinez", "Miller", "Mitchell", "Moore",
    "Morales", "Morgan", "Morris", "Murphy", "Myers", "Nelson", "Nguyen", "Ortiz", "Parker", "Patel",
    "Perez", "Peterson", "Phillips", "Powell", "Price", "Ramirez", "Reed", "Reyes", "Richardson",
    "Rivera", "Roberts", "Robinson", "Rodriguez", "Rogers", "Ross", "Russell", "Sanchez", "Sanders",
    "Scott", "Smith", "Stewart", "Sullivan", "Taylor", "Thomas", "Thompson", "Torres", "Turner",
    "Walker", "Ward", "Watson", "White", "Williams", "Wilson", "Wood", "Wright", "Young",
)

# Words that make titles, descriptions, tags and poster names read like the category they belong to.
CATEGORY_WORDS = {
    "art": ("painting", "sketch", "watercolor", "canvas", "abstract", "portrait", "gallery", "mural"),
    "beauty": ("makeup", "skincare", "nails", "hairstyle", "lipstick", "glow", "routine", "serum"),
    "christmas": ("tree", "ornaments", "wreath", "gifts", "cookies", "lights", "stocking", "santa"),
    "diy-and-crafts": ("handmade", "upcycle", "paper", "glue", "yarn", "sewing", "stencil", "project"),
    "education": ("learning", "classroom", "worksheet", "science", "math", "reading", "teacher", "study"),
    "event-planning": ("wedding", "party", "birthday", "decor", "venue", "checklist", "invites", "theme"),
    "finance": ("budget", "saving", "investing", "debt", "money", "frugal", "income", "retirement"),
    "home-decor": ("living room", "bedroom", "cozy", "rustic", "minimalist", "shelf", "rug", "lamp"),
    "mens-fashion": ("suit", "sneakers", "streetwear", "watch", "jacket", "beard", "style", "denim"),
    "quotes": ("inspiration", "motivation", "love", "life", "wisdom", "positive", "words", "mindset"),
    "tattoos": ("ink", "sleeve", "linework", "floral", "minimal", "blackwork", "design", "small"),
    "travel": ("beach", "mountains", "itinerary", "road trip", "backpacking", "city", "island", "hotel"),
    "vehicles": ("classic car", "motorcycle", "truck", "restoration", "engine", "camper", "racing", "ev"),
}

ADJECTIVES = (
    "easy", "beautiful", "simple", "amazing", "creative", "modern", "vintage", "cute", "best",
    "quick", "budget", "stunning", "ultimate", "clever", "bold", "classic",
)

POSTER_SUFFIXES = ("Studio", "Daily", "Co", "Life", "Ideas", "Blog", "Hub", "Club", "Shop", "Lab")
